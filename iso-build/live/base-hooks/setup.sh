#!/bin/sh
# mmdebstrap --setup-hook: runs before any package is installed; $1 is the new root.
set -eu
root="$1"
here="$(dirname "$0")"
# zstd initramfs: smaller and quicker to build and unpack than gzip. Level 19 (mkinitramfs's
# default is 9) makes it a megabyte smaller, a megabyte less for GRUB to read at every boot;
# zstd unpacks it as fast. Only the curated drivers (initramfs-modules, added and enforced by
# initramfs-hook.sh), not MODULES=most. The list is not one of initramfs-tools' own module
# lists: those are loaded one by one at every boot whatever the hardware, while udev's
# coldplug in the initramfs loads the drivers it needs.
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/etc/initramfs-tools/hooks" \
	"$root/usr/share/engine-installer"
printf 'COMPRESS=zstd\nCOMPRESSLEVEL=19\nMODULES=list\n' > "$root/etc/initramfs-tools/conf.d/engine.conf"
cp "$here/initramfs-modules" "$root/usr/share/engine-installer/initramfs-modules"
install -m 755 "$here/initramfs-hook.sh" "$root/etc/initramfs-tools/hooks/engine-modules"
# UEFI HTTP boot: the firmware hands the downloaded ISO over as a RAM disk described by the ACPI
# NFIT table; nfit + nd_pmem make it /dev/pmem0, where live-boot finds the medium. They are
# loaded at every boot (a machine without an NFIT just gets no pmem device).
mkdir -p "$root/etc/initramfs-tools/hooks"
cat > "$root/etc/initramfs-tools/hooks/engine-ramdisk" <<'HOOK'
#!/bin/sh
case "$1" in prereqs) exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
manual_add_modules nfit nd_pmem
printf 'nfit\nnd_pmem\n' >> "${DESTDIR}/conf/modules"
HOOK
chmod 755 "$root/etc/initramfs-tools/hooks/engine-ramdisk"
