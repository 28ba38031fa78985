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
	qemu-system-x86 qemu-utils ovmf ipxe-qemu \
	xorriso genisoimage mmdebstrap squashfs-tools \
	busybox-static linux-image-amd64 kmod cpio zstd xz-utils \
	udev kbd console-data imagemagick fontconfig openssl gettext \
	libparted-dev pkg-config python3-dev python3-venv gcc
APT_STAMP := $(VENV)/.apt-stamp

.PHONY: setup test test-unit test-integration test-e2e lint demo demo-upgrade demo-run clean po mo

setup: $(VENV)/.setup-stamp mo

# Translations (docs/tui.md): po/<lang>.po are the sources; the .mo catalogs the installer
# loads are built here (and by `engine-iso build` for the live system); `make po` extracts
# the messages from the code into po/engine_installer.pot and merges them into each .po.
LOCALES := ja
MO_FILES := $(foreach l,$(LOCALES),engine_installer/locale/$(l)/LC_MESSAGES/engine_installer.mo)

engine_installer/locale/%/LC_MESSAGES/engine_installer.mo: po/%.po $(APT_STAMP)
	mkdir -p $(@D)
	msgfmt --check --output-file=$@ $<

mo: $(MO_FILES)

po: $(APT_STAMP)
	po/update

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

# All tiers in one pytest run so the closing summary line counts everything. Three workers
# on a two-core machine: one runs the unit and integration tests in order (tests/conftest.py),
# which mostly wait on loop devices and on the simulated installs of the TUI tests, so two
# workers boot the QEMU cells meanwhile; then all three take cells. docs/speed.md has the
# figures (two workers: 27.7 min, three: 25.3).
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -p no:cacheprovider --durations=20 -n 3 --dist loadgroup \
		tests/unit tests/integration tests/e2e

# make demo: a sample Engine payload, the installer ISO (the live system base is built once
# and cached, see docs/iso.md), then QEMU (TCG, q35, SeaBIOS) with the ISO as a DVD and the
# laptop disk, the installer on this terminal (serial console on stdio; Ctrl-A X quits QEMU).
# When the installer reboots or powers off, QEMU stops and the laptop disk boots alone: the
# installed Engine starts. The laptop disk is kept between runs (DEMO_FRESH=1 starts from a
# blank one); `make demo-upgrade` builds a newer sample Engine (DEMO_UPGRADE_VERSION) and boots
# its installer with the same disk, so screen 5 offers the upgrade. docs/tui.md has the walk.
DEMO := out/demo
DEMO_VERSION ?= 5.0
DEMO_UPGRADE_VERSION ?= 5.1
# tb-size: TCG's code cache at 128 MiB, as qemu/harness.py (TCG_ACCEL) explains.
DEMO_QEMU := qemu-system-x86_64 -accel tcg,tb-size=128 -machine q35 -m 2048 -smp 2 -nographic
DEMO_DISK := -drive if=none,id=laptop,format=qcow2,file=$(DEMO)/laptop.qcow2

demo: setup
	@$(MAKE) --no-print-directory demo-run VERSION=$(DEMO_VERSION)

demo-upgrade: setup
	@test -f $(DEMO)/laptop.qcow2 || { echo "error: no demo laptop disk yet: run make demo \
		first (it installs Engine $(DEMO_VERSION))"; exit 2; }
	@$(MAKE) --no-print-directory demo-run VERSION=$(DEMO_UPGRADE_VERSION)

demo-run:
	mkdir -p $(DEMO)
	@echo "== 1/4 the sample Engine $(VERSION) payload"
	test -f $(DEMO)/payload-$(VERSION)/manifest.json || \
		$(VENV)/bin/engine-iso sample-payload --version $(VERSION) \
			--build $(subst .,,$(VERSION)) --out $(DEMO)/payload-$(VERSION)
	@echo "== 2/4 the installer ISO (the first build makes the live system base: minutes)"
	$(VENV)/bin/engine-iso build --payload $(DEMO)/payload-$(VERSION) \
		-o $(DEMO)/engine-$(VERSION).iso
	@if [ -n "$(DEMO_FRESH)" ] || [ ! -f $(DEMO)/laptop.qcow2 ]; then \
		echo "a blank 8 GiB laptop disk: $(DEMO)/laptop.qcow2"; \
		qemu-img create -q -f qcow2 $(DEMO)/laptop.qcow2 8G; \
	else echo "the laptop disk from the last run: $(DEMO)/laptop.qcow2"; fi
	@echo "== 3/4 the installer in QEMU (TCG: a minute or two to screen 1; Ctrl-A X quits)"
	$(DEMO_QEMU) -no-reboot \
		-drive if=none,id=dvd,format=raw,media=cdrom,readonly=on,file=$(DEMO)/engine-$(VERSION).iso \
		-device ide-cd,drive=dvd,bus=ide.1,bootindex=0 \
		$(DEMO_DISK) -device ide-hd,drive=laptop,bus=ide.0,bootindex=1
	@echo "== 4/4 the laptop disk alone, as after removing the DVD (Ctrl-A X quits)"
	$(DEMO_QEMU) $(DEMO_DISK) -device ide-hd,drive=laptop,bus=ide.0,bootindex=0

clean:
	rm -rf $(VENV) build *.egg-info
