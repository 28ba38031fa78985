"""Build a MachineSnapshot of a profiled model: for tests and for --dry-run demos.

The DMI strings and CPU come from the profile's [sample] table (what a real unit reports);
the knobs recreate the field failures hw-check must explain (VT-x off, VMD on, too little RAM).
"""

from __future__ import annotations

from engine_installer.hw.schema import Profile
from engine_installer.machine.snapshot import DiskInfo, MachineSnapshot, StorageController

# A plausible Intel laptop flag set; vmx/ept are added or left out by the knobs below.
BASE_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
    "sse sse2 ss ht tm pbe syscall nx rdtscp lm constant_tsc pni pclmulqdq ssse3 cx16 sse4_1 "
    "sse4_2 x2apic popcnt aes xsave avx lahf_lm"
).split()
GB = 1000**3
GIB = 2**30
STORAGE_STATES = ("ok", "vmd", "vmd-no-driver", "rst-remapped", "raid", "none")


def _disk(controller: str, size: int) -> tuple[DiskInfo, StorageController]:
    if controller == "nvme":
        disk = DiskInfo("/dev/nvme0n1", size, model="SSD", bus="nvme", controller="nvme")
        return disk, StorageController("0000:3d:00.0", "nvme", "nvme", "144d", "a808")
    if controller.startswith("virtio"):
        disk = DiskInfo("/dev/vda", size, bus="virtio", controller=controller)
        return disk, StorageController("0000:00:04.0", "virtio", "virtio-pci", "1af4", "1042")
    disk = DiskInfo("/dev/sda", size, model="SSD", vendor="ATA", bus="ata", controller=controller)
    return disk, StorageController("0000:00:17.0", "ahci", controller, "8086", "9d03")


def snapshot_for_profile(
    profile: Profile,
    *,
    vt_x: bool = True,
    ept: bool = True,
    vt_d: bool = True,
    memory_gib: float | None = None,
    disk_gb: float | None = None,
    firmware: str | None = None,
    storage: str = "ok",
    secure_boot: str = "",
) -> MachineSnapshot:
    """A snapshot of this model; defaults give a machine that passes every requirement."""
    if storage not in STORAGE_STATES:
        raise ValueError(f"storage must be one of {STORAGE_STATES}")
    flags = list(BASE_FLAGS)
    if vt_x and profile.vt_x != "ignore":
        flags.append("vmx")
        if ept:
            flags += ["ept", "vpid", "flexpriority"]
    gib = memory_gib if memory_gib is not None else profile.recommended_ram_gib
    # Usable memory sits a little under the installed amount, as psutil reports it.
    memory = int(gib * GIB * 0.97)
    size = int((disk_gb if disk_gb is not None else max(profile.min_disk_gb, 256)) * GB)
    disk, ctrl = _disk(profile.storage_controllers[0], size)
    disks, controllers = [disk], [ctrl]
    if storage == "vmd":  # vmd driver loaded: the NVMe disk shows up inside the VMD domain
        disk.controller = "vmd"
        controllers = [StorageController("0000:00:0e.0", "vmd", "vmd", "8086", "9a0b"), ctrl]
    elif storage == "vmd-no-driver":  # no vmd driver: Linux sees no disk at all
        disks = []
        controllers = [StorageController("0000:00:0e.0", "vmd", "", "8086", "9a0b")]
    elif storage == "rst-remapped":  # RST RAID: NVMe hidden behind the AHCI controller
        disks = []
        controllers = [StorageController("0000:00:17.0", "raid", "ahci", "8086", "282a", 1)]
    elif storage == "raid":  # SATA RAID mode, disks still visible through ahci
        controllers = [StorageController("0000:00:17.0", "raid", "ahci", "8086", "282a")]
    elif storage == "none":
        disks, controllers = [], []
    mode = firmware or (profile.match.get("firmware") or profile.firmware_modes)[0]
    dmi = {k: v for k, v in profile.sample.items() if k != "cpu_model"}
    return MachineSnapshot(
        dmi=dmi,
        cpu_model=profile.sample.get("cpu_model", "Intel(R) Core(TM) CPU"),
        cpu_flags=sorted(flags),
        cpu_count=4,
        memory_bytes=memory,
        firmware=mode,
        secure_boot=secure_boot or ("unsupported" if mode == "bios" else "off"),
        acpi_dmar=vt_d and profile.vt_d != "ignore",
        disks=disks,
        storage_controllers=controllers,
        description=f"synthesised from hw profile {profile.id}",
    )
