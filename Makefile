# Engine installer — the two commands for a new machine are in README.md:
#   make demo   build the ISO and boot it in QEMU with the installer on this terminal
#   make test   set up everything, then run every test tier
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the project needs on a build/test machine (bookworm).
APT_PACKAGES := \
	parted gdisk fdisk util-linux dosfstools e2fsprogs mtools dmsetup \
	grub-pc-bin grub-efi-amd64-bin grub2-common grub-common \
	shim-signed shim-helpers-amd64-signed grub-efi-amd64-signed sbsigntool \
	qemu-system-x86 qemu-utils ovmf \
	xorriso genisoimage mmdebstrap squashfs-tools \
	busybox-static linux-image-amd64 kmod cpio zstd xz-utils \
	udev kbd console-data imagemagick openssl \
	libparted-dev pkg-config python3-dev python3-venv gcc
APT_STAMP := $(VENV)/.apt-stamp

.PHONY: setup test test-unit test-integration test-e2e lint demo clean

setup: $(VENV)/.setup-stamp

$(APT_STAMP): Makefile
	mkdir -p $(VENV)
	missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi
	touch $@

$(VENV)/.setup-stamp: $(APT_STAMP) pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test-unit: setup
	$(PY) -m pytest -q tests/unit

test-integration: setup
	$(PY) -m pytest -q tests/integration

test-e2e: setup
	$(PY) -m pytest -q tests/e2e

# All tiers in one pytest run so the closing summary line counts everything; fast tiers first.
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -p no:cacheprovider --durations=20 tests/unit tests/integration tests/e2e

# make demo: a 5.0 sample payload, the ISO (live system base cached, see docs/iso.md), then
# QEMU (TCG, q35, SeaBIOS) with the ISO as a DVD, a blank 8 GiB laptop disk and the installer
# on this terminal (serial console on stdio; Ctrl-A X quits QEMU).
DEMO := out/demo
demo: setup
	mkdir -p $(DEMO)
	test -f $(DEMO)/payload-5.0/manifest.json || \
		$(VENV)/bin/engine-iso sample-payload --version 5.0 --out $(DEMO)/payload-5.0
	$(VENV)/bin/engine-iso build --payload $(DEMO)/payload-5.0 -o $(DEMO)/engine-5.0.iso
	qemu-img create -q -f qcow2 $(DEMO)/laptop.qcow2 8G
	@echo "Booting the Engine installer in QEMU (TCG: about a minute). Ctrl-A X quits."
	qemu-system-x86_64 -accel tcg -machine q35 -m 2048 -smp 2 -nographic \
		-drive if=none,id=dvd,format=raw,media=cdrom,readonly=on,file=$(DEMO)/engine-5.0.iso \
		-device ide-cd,drive=dvd,bus=ide.1,bootindex=0 \
		-drive if=none,id=laptop,format=qcow2,file=$(DEMO)/laptop.qcow2 \
		-device ide-hd,drive=laptop,bus=ide.0,bootindex=1

clean:
	rm -rf $(VENV) build *.egg-info
