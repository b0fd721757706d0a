"""formats/derived.py: the layouts and wire constants the run path reads without construct.

Generated from the schemas by ``python -m pcapconstrictor.formats.derive``; these tests
re-derive everything from the construct schemas and fail while the file is out of date, so a
changed schema can never leave a stale offset behind.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import construct as cs

import pcapconstrictor.formats as formats_pkg
from pcapconstrictor.formats import derived, ip, pcapng
from pcapconstrictor.formats.derive import NOT_SCHEMAS, derive, derived_path, generate, rederive
from pcapconstrictor.formats.layout import Layout


def test_derived_py_is_what_the_schemas_give_today():
    with open(derived_path()) as f:
        text = f.read()
    assert text == generate(), "formats/derived.py is stale: run python -m pcapconstrictor.formats.derive"


def test_a_changed_schema_changes_the_generated_text(monkeypatch):
    wider = cs.Struct("src_port" / cs.Int32ub, "dst_port" / cs.Int16ub)
    monkeypatch.setattr("pcapconstrictor.formats.transport.udp_header", wider)
    assert generate() != open(derived_path()).read()


def test_derived_layouts_read_what_the_schema_derivation_reads():
    for name, schema in (("ipv4_header", ip.ipv4_header), ("ipv6_header", ip.ipv6_header)):
        ours: Layout = getattr(derived.ip, name)
        assert repr(ours) == repr(derive(schema))
        raw = bytes(range(ours.size))
        assert ours.parse_fast(raw) == derive(schema).parse_fast(raw)
    assert repr(derived.pcapng.BIG.block_header) == repr(derive(pcapng.BIG.block_header))


def test_every_wire_constant_of_formats_is_in_derived_with_its_value():
    skipped = (cs.Construct, type, types.FunctionType, types.BuiltinFunctionType, types.ModuleType,
               types.SimpleNamespace)  # a function compiled with mypyc is a builtin one
    for info in pkgutil.iter_modules(formats_pkg.__path__):
        if info.name in NOT_SCHEMAS:
            continue
        module = importlib.import_module(f"{formats_pkg.__name__}.{info.name}")
        for name, value in vars(module).items():
            if not name.startswith("_") and not isinstance(value, skipped):
                assert getattr(getattr(derived, info.name), name) == value, f"{info.name}.{name}"
    assert derived.esp.non_esp_marker == b"\0\0\0\0"  # a Const: its bytes


def test_importing_derived_imports_no_construct():
    code = "import sys, pcapconstrictor.formats.derived; print('construct' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_machine_of_other_word_sizes_derives_every_namespace_again_from_the_schemas():
    # what the guard at the end of derived.py runs where a pointer or a long has another size
    namespace: dict = {}
    rederive(namespace)
    names = [n for n, v in vars(derived).items() if isinstance(v, type) and v.__module__ == derived.__name__]
    assert sorted(n for n, v in namespace.items() if isinstance(v, type) and n in names) == sorted(names)
    assert repr(namespace["bpf"].sock_fprog) == repr(derived.bpf.sock_fprog)
    assert namespace["netdevice"].ifreq_data.size == derived.netdevice.ifreq_data.size
