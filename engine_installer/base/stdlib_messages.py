"""Messages of Python's argparse that a user of our three commands reads, listed here only so
that xgettext puts them into our catalog.

argparse words its help and errors with gettext's global domain, and base/i18n.py makes that
domain ours (`gettext.textdomain`), so "usage:", "options:" and the argument errors of
`engine-installer --help`, `engine-usb --help` and `engine-iso --help` come out in the chosen
language. Nothing imports this module; the ids must stay exactly argparse's (Python 3.11).
"""

from engine_installer.base.i18n import N_

ARGPARSE_MESSAGES = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("show program's version number and exit"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("unrecognized arguments: %s"),
    N_("the following arguments are required: %s"),
    N_("expected one argument"),
    N_("expected at most one argument"),
    N_("expected at least one argument"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("invalid %(type)s value: %(value)r"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("not allowed with argument %s"),
    N_("ignored explicit argument %r"),
    N_("one of the arguments %s is required"),
    N_("%(prog)s: error: %(message)s\n"),
)
