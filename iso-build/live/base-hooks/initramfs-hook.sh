#!/bin/sh
# initramfs-tools hook, installed as /etc/initramfs-tools/hooks/engine-modules (hooks under /etc
# run after every packaged one): add the modules listed in LIST (initramfs-modules) with their
# dependencies, without loading them at boot (udev loads what the hardware needs, and
# live-boot and mount load the file systems), and keep no other module. Packaged hooks add far
# more than finding the boot medium needs (live-boot: every network driver and many file
# systems; kms: GPU drivers), and every extra megabyte is read by the boot loader, unpacked by
# the kernel and deleted again at switch-root.
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in prereqs) prereqs; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
set -eu
LIST=/usr/share/engine-installer/initramfs-modules

modules="$(sed -e 's/#.*//' "${LIST}")"
deps="$(mktemp)"
for module in ${modules}; do
	if ! modprobe --set-version="${version}" --ignore-install --show-depends "${module}" >> "${deps}"; then
		echo "E: engine-modules: ${module} (listed in ${LIST}) is not a module of ${version}" >&2
		exit 1
	fi
done
# shellcheck disable=SC2086
manual_add_modules ${modules}
keep="$(mktemp)"
awk '$1 == "insmod" { sub(/.*\/kernel\//, "kernel/", $2); print $2 }' "${deps}" | sort -u > "${keep}"
find "${DESTDIR}" -type f -name '*.ko*' | while read -r path; do
	grep -qxF "kernel/${path#*/kernel/}" "${keep}" || rm -f "${path}"
done
find "${DESTDIR}" -depth -type d -path '*/modules/*' -empty -delete
rm -f "${deps}" "${keep}"
