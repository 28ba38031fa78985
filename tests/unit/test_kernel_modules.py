"""Which kernel modules the live root leaves out: the listed trees, minus whatever a kept module
needs (engine_installer/iso/kernel_modules.py)."""

from __future__ import annotations

from engine_installer.iso import base
from engine_installer.iso.kernel_modules import modules_to_prune, read_modules_dep

DEP = """\
kernel/drivers/gpu/drm/i915/i915.ko: kernel/drivers/gpu/drm/display/drm_display_helper.ko \
kernel/drivers/media/cec/core/cec.ko kernel/drivers/media/rc/rc-core.ko
kernel/drivers/gpu/drm/display/drm_display_helper.ko: kernel/drivers/media/cec/core/cec.ko
kernel/drivers/media/cec/core/cec.ko: kernel/drivers/media/rc/rc-core.ko
kernel/drivers/media/rc/rc-core.ko:
kernel/drivers/media/usb/uvc/uvcvideo.ko: kernel/drivers/media/v4l2-core/videodev.ko
kernel/drivers/media/v4l2-core/videodev.ko:
kernel/sound/core/snd.ko: kernel/sound/soundcore.ko
kernel/sound/soundcore.ko:
kernel/sound/pci/hda/snd-hda-intel.ko: kernel/sound/core/snd.ko
kernel/drivers/platform/x86/thinkpad_acpi.ko: kernel/sound/core/snd.ko kernel/sound/soundcore.ko
kernel/drivers/soundwire/soundwire-bus.ko:
kernel/lib/test_bpf.ko:
kernel/lib/test_blackhole_dev.ko:
"""


def test_listed_modules_go_unless_a_kept_module_needs_them():
    deps = read_modules_dep(DEP.splitlines())
    pruned = modules_to_prune(
        deps, ["kernel/drivers/media", "kernel/sound", "kernel/lib/test_bpf.ko"]
    )
    assert pruned == [
        "kernel/drivers/media/usb/uvc/uvcvideo.ko",
        "kernel/drivers/media/v4l2-core/videodev.ko",
        "kernel/lib/test_bpf.ko",
        "kernel/sound/pci/hda/snd-hda-intel.ko",
    ]
    # i915 keeps the CEC and remote-control cores (directly and through the display helper);
    # thinkpad_acpi keeps the sound core; a tree's name is not a prefix of its siblings'
    # (kernel/sound is not kernel/soundwire); a file entry names that file only.
    for kept in ("cec.ko", "rc-core.ko", "sound/core/snd.ko", "soundcore.ko", "soundwire-bus.ko",
                 "test_blackhole_dev.ko"):  # fmt: skip
        assert not any(module.endswith(kept) for module in pruned), kept


def test_the_recipe_never_lists_what_an_installer_uses():
    entries = base.read_list(base.recipe_dir() / "base-hooks" / "pruned-modules")
    kept_trees = ("kernel/drivers/ata", "kernel/drivers/nvme", "kernel/drivers/usb/storage",
                  "kernel/drivers/usb/host", "kernel/drivers/scsi", "kernel/drivers/mmc",
                  "kernel/drivers/hid", "kernel/drivers/input", "kernel/drivers/gpu",
                  "kernel/drivers/net/ethernet", "kernel/drivers/net/usb", "kernel/fs",
                  "kernel/drivers/md", "kernel/drivers/virtio", "kernel/drivers/nvdimm",
                  "kernel/drivers/acpi")  # fmt: skip
    for entry in entries:
        assert entry.startswith("kernel/"), entry
        for tree in kept_trees:
            assert not (tree + "/").startswith(entry.rstrip("/") + "/"), (entry, tree)
            assert not entry.startswith(tree + "/"), (entry, tree)
