"""Guest images: recognise, check, place and load what a VM boots.

A VM boots from up to three files: a kernel (arm64 ``Image``, x86 ``bzImage``, ELF, arm32
``zImage``, U-Boot ``uImage``), a device tree and an initial RAM disk.  Each module here owns
one concept:

* one file format each: :mod:`.arm64_image`, :mod:`.bzimage`, :mod:`.elf`, :mod:`.zimage`,
  :mod:`.uimage`, :mod:`.compression` (gzip), :mod:`.cpio` (newc + initramfs builder),
  :mod:`.dtb` (check, edit, compile, overlays);
* :mod:`.blob` - a file's bytes, mapped rather than read;
* :mod:`.kernel` - a kernel's placement rules in format-independent terms;
* :mod:`.detect` - which format a file is, opened for its role;
* :mod:`.placement` - choosing and checking guest-physical addresses;
* :mod:`.prepare` - configuration + files to a finished DTB / zero page and entry state;
* :mod:`.loader` - copying into guest RAM through the guest-RAM API;
* :mod:`.bootstate` - the registers and boot data a kernel expects at entry.
"""
