#!/bin/sh
# mmdebstrap --setup-hook: runs before any package is installed; $1 is the new root.
set -eu
root="$1"
here="$(dirname "$0")"
# zstd initramfs: smaller and quicker to build and unpack than gzip. Only the curated drivers
# (initramfs-modules, enforced by initramfs-hook.sh), not MODULES=most.
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/etc/initramfs-tools/hooks" \
	"$root/usr/share/initramfs-tools/modules.d"
printf 'COMPRESS=zstd\nMODULES=list\n' > "$root/etc/initramfs-tools/conf.d/engine.conf"
cp "$here/initramfs-modules" "$root/usr/share/initramfs-tools/modules.d/engine-live"
install -m 755 "$here/initramfs-hook.sh" "$root/etc/initramfs-tools/hooks/engine-modules"
# Keep the base small: no docs, man pages or translations on install media.
mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
cat > "$root/etc/dpkg/dpkg.cfg.d/engine-nodoc" <<'CFG'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
CFG
