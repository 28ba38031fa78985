#!/bin/sh
# mmdebstrap --customize-hook: runs after all packages are installed; $1 is the new root,
# $2 the hostname from base.toml.
set -eu
root="$1"
hostname="$2"
echo "$hostname" > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$hostname" > "$root/etc/hosts"
# Install media: no password stands between a technician and the emergency shell or a
# debugging console (the installer itself runs without any login, see the app layer).
chroot "$root" passwd -d root >/dev/null
# Each boot gets its own machine-id (systemd creates it on the overlay at first boot).
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# apt picks usrmerge for init-system-helpers' "usrmerge | usr-is-merged": its conversion has
# nothing to do on a root mmdebstrap merged, and it brings Perl (about 50 MB unpacked).
chroot "$root" apt-get --yes --quiet purge usrmerge perl libperl5.36 perl-modules-5.36 \
	libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl libgdbm-compat4 >/dev/null
# Nothing in the base should wait for a network that install media do not need.
rm -f "$root"/etc/systemd/system/multi-user.target.wants/apt-daily*.timer
# fbterm needs one monospaced CJK face; the proportional VL PGothic is not used.
rm -f "$root"/usr/share/fonts/truetype/vlgothic/VL-PGothic-Regular.ttf
# fontconfig trusts a cache only while its font directory's mtime is the one the cache recorded,
# and mksquashfs gives every directory one fixed time (ENGINE_SQUASH_EPOCH, from base.py).
# Caches recorded with this build's mtimes would be stale at every boot, and fbterm would scan
# every font before tty1 shows the installer. So the font directories get that time first.
# (fc-cache's own SOURCE_DATE_EPOCH support is no way round: fontconfig 2.14.1's cleaning pass
# then finds the caches it has just written invalid and deletes them.)
find "$root/usr/share/fonts" -type d -exec touch -h -d "@$ENGINE_SQUASH_EPOCH" {} +
chroot "$root" fc-cache -f >/dev/null
rm -f "$root"/var/log/*.log "$root"/var/cache/ldconfig/aux-cache
# Python's standard library byte code as unchecked hashes. mksquashfs stores every
# file with one fixed time (reproducible builds), so the timestamp-checked .pyc files Debian's
# packages compiled would all be stale at boot, and every Python start (the installer's, twice)
# would compile each module it imports again from source: seconds under emulation, at every
# boot. The live root is read-only, so byte code never checked against its source is safe.
stdlib=$(chroot "$root" python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')
chroot "$root" python3 -m compileall -q -f -j 0 --invalidation-mode unchecked-hash "$stdlib" >/dev/null
