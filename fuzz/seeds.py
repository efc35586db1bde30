#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# seeds.py - writes fuzz/corpus/, the seed inputs of fuzz_api.c: one small
# scenario per feature, in the input format fuzz_api.c's top comment and
# do_op() describe.  Run from the repository root after changing that
# format: python3 fuzz/seeds.py
import os
import struct

OPS = ["convert", "strided", "punch", "pin", "unpin", "populate", "mmap",
       "munmap", "probe", "probe_pin", "get_attributes", "stat", "bind",
       "unbind", "get_pfn", "put_pfn", "listener_register",
       "listener_unregister", "memory_failure", "close", "bad"]
OP = {name: i for i, name in enumerate(OPS)}

MMAP, INIT_SHARED, KVM, BAD_CREATE = 1, 2, 4, 0x40
PRIV, WAIT = 1, 2
RW, R, NONE = 1, 0, 2


def u8(v):
    return struct.pack("<B", v & 0xff)


def u16(v):
    return struct.pack("<H", v & 0xffff)


def u64(v):
    return struct.pack("<Q", v & 0xffffffffffffffff)


def op(name, *args):
    return u8(OP[name]) + b"".join(args)


def convert(first, pages, flags):
    return op("convert", u16(first), u8(pages), u8(flags))


def probe(view, page, off, flags=0):
    return op("probe", u8(view), u16(page), u16(off), u8(flags))


def seed(flags, size_byte, *ops):
    return u8(flags) + u8(size_byte) + b"".join(ops)


SEEDS = {
    # Shared file, one view: write, make private, SIGBUS, back, read.
    "views-vma": seed(MMAP | INIT_SHARED, 7,
                      op("mmap", u16(0), u8(8), u8(RW)),
                      probe(0, 2, 100, 0x41),
                      convert(2, 1, PRIV), probe(0, 2, 100),
                      probe(0, 2, 7, 0x11),
                      convert(2, 1, 0), probe(0, 2, 100),
                      op("stat", u8(255))),
    # Private file (userfaultfd view), populate, share, pin, -EAGAIN.
    "views-uffd-pin": seed(MMAP, 15,
                           op("mmap", u16(0), u8(16), u8(RW)),
                           op("populate", u16(3), u16(5000), u8(0)),
                           convert(3, 1, 0), probe(0, 3, 10),
                           op("pin", u16(3), u8(1), u8(0)),
                           convert(2, 3, PRIV),
                           op("probe_pin", u8(0), u8(0), u16(9), u8(0x21)),
                           op("unpin", u8(0), u8(0), u16(0), u8(0)),
                           convert(2, 3, PRIV | WAIT), probe(0, 3, 10),
                           op("punch", u16(3), u8(1), u8(0)),
                           convert(3, 1, 0), probe(0, 3, 10)),
    # More than 64 private islands: the shared view switches mode.
    "islands": seed(MMAP | INIT_SHARED, 255,
                    op("mmap", u16(0), u8(193), u8(RW)),
                    probe(0, 1, 5, 0x33),
                    op("strided", u16(0), u8(0), u8(79), u8(PRIV)),
                    probe(0, 0, 5), probe(0, 1, 5),
                    op("mmap", u16(10), u8(40), u8(R)),
                    probe(1, 3, 0),
                    op("strided", u16(0), u8(0), u8(79), u8(0)),
                    probe(0, 0, 5)),
    # A binding: references, memory faults, invalidations, poison.
    "binding": seed(MMAP | INIT_SHARED, 15,
                    op("bind", u8(0), u16(2), u8(8)),
                    op("get_pfn", u8(0), u16(0), u8(0)),
                    convert(2, 1, PRIV),
                    op("get_pfn", u8(0), u16(1), u8(1)),
                    convert(3, 1, PRIV),
                    op("get_pfn", u8(0), u16(1), u8(1)),
                    op("populate", u16(3), u16(64), u8(0)),
                    op("punch", u16(3), u8(2), u8(0)),
                    op("memory_failure", u16(4), u8(0)),
                    op("get_pfn", u8(0), u16(2), u8(0)),
                    op("bind", u8(1), u16(9), u8(4)),
                    op("put_pfn", u8(0), u16(0), u8(0)),
                    op("put_pfn", u8(0), u16(1), u8(1)),
                    op("unbind", u8(0))),
    # Listeners, one that refuses some pages: vetoes and replays.
    "listeners": seed(MMAP, 15,
                      op("mmap", u16(0), u8(16), u8(RW)),
                      convert(0, 4, 0),
                      op("listener_register", u8(0), u16(0), u8(16), u8(0)),
                      op("listener_register", u8(1), u16(2), u8(6), u8(1)),
                      convert(4, 8, 0), convert(0, 16, PRIV),
                      convert(5, 1, 0), convert(6, 3, 0),
                      op("listener_unregister", u8(0)),
                      convert(0, 16, 0)),
    # Closed while held: only the releases work; the last one frees.
    "close-held": seed(MMAP | INIT_SHARED, 3,
                       op("mmap", u16(0), u8(4), u8(RW)),
                       op("pin", u16(1), u8(1), u8(0)),
                       op("bind", u8(0), u16(0), u8(4)),
                       op("listener_register", u8(0), u16(0), u8(4), u8(1)),
                       op("close"), convert(0, 1, PRIV),
                       probe(0, 1, 3), op("stat", u8(8)),
                       op("unpin", u8(0), u8(0), u16(0), u8(0)),
                       op("munmap", u8(0), u8(0)),
                       op("unbind", u8(0)),
                       op("listener_unregister", u8(0))),
    # No GMEM_FLAG_MMAP: -ENODEV, but pins still reach shared pages.
    "no-mmap": seed(INIT_SHARED | BAD_CREATE, 5, u8(2), u8(7),
                    op("mmap", u16(0), u8(6), u8(RW)),
                    op("pin", u16(0), u8(3), u8(0)),
                    op("probe_pin", u8(0), u8(1), u16(77), u8(0x55)),
                    op("probe_pin", u8(0), u8(1), u16(77), u8(0)),
                    convert(1, 1, PRIV)),
    # The kvm backend (where /dev/kvm works; else memfd): views, pins,
    # populate, a binding.
    "kvm": seed(MMAP | INIT_SHARED | KVM, 7,
                op("mmap", u16(0), u8(8), u8(RW)),
                probe(0, 1, 9, 0x61), convert(1, 2, PRIV),
                probe(0, 1, 9), op("populate", u16(1), u16(4200), u8(4)),
                op("bind", u8(0), u16(0), u8(8)),
                op("get_pfn", u8(0), u16(2), u8(1)),
                op("pin", u16(4), u8(2), u8(0)),
                convert(0, 8, 0), probe(0, 2, 3),
                op("punch", u16(0), u8(3), u8(0)),
                op("unbind", u8(0))),
    # Malformed arguments of every kind.
    "bad": seed(MMAP | INIT_SHARED, 3,
                op("bad", u8(0), u64(1), u64(4096), u8(1)),
                op("bad", u8(0), u64(0), u64(4096), u8(0x80)),
                op("bad", u8(1), u64(0), u64(4096), u8(0x10)),
                op("bad", u8(2), u64(-4096), u64(8192), u8(0)),
                op("bad", u8(3), u64(1 << 63), u64(0), u8(0)),
                op("bad", u8(4), u64(16384), u64(0), u8(0)),
                op("bad", u8(5), u64(0), u64(0), u8(0)),
                convert(1, 0, 0), convert(1, 1, 4 | PRIV),
                convert(3, 2, PRIV), op("punch", u16(0), u8(1), u8(8)),
                op("mmap", u16(0), u8(1), u8(3)),
                op("get_attributes", u16(0), u8(2))),
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
os.makedirs(out, exist_ok=True)
for name, data in sorted(SEEDS.items()):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    print(f"{name}: {len(data)} bytes")
