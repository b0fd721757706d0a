"""Where records go: the one sink interface every output satisfies, and the factory that
builds the configured one (classic PCAP or pcapng, rotated or not, a file or standard output).

A sink has ``write(ts_ns, data, incl_len, orig_len)``, ``flush()``, ``close()`` and
``records``; the runner and the live loop see nothing else, so formats and rotation never
touch them.  Timestamps are integer nanoseconds: pcapng keeps them whole, classic PCAP
truncates them to microseconds (SPEC §11.3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pcapconstrictor.engine.config import Config, output_snaplen
from pcapconstrictor.engine.sources.pcapng_reader import PcapngReader
from pcapconstrictor.formats.derived import link as link_format

from .pcap_writer import PcapWriter
from .pcapng_section_writer import PcapngSections, PcapngSectionWriter
from .pcapng_writer import PcapngWriter
from .rotation import FileNames, RotatingSink

if TYPE_CHECKING:
    from .closed_files import ClosedFileSettings

PCAPNG_EXTENSIONS = (".pcapng", ".ntar")


class Sink(Protocol):
    records: int

    def write(self, ts_ns: int, data: bytes | memoryview, incl_len: int, orig_len: int) -> None: ...

    def write_batch(self, frames, lengths) -> None: ...  # write() for each (ts_ns, data, orig_len), incl_len

    def flush(self) -> None: ...

    def close(self) -> None: ...


class OutputConfigError(Exception):
    """Output settings that do not go together; ``str()`` follows ``Configuration error: ``."""


def output_format(config: Config) -> str:
    """``capture.format``; ``auto`` picks pcapng for a ``.pcapng`` output, else classic PCAP
    (:func:`open_sink` also keeps a pcapng input's output pcapng under ``auto``)."""
    chosen = str(config["capture.format"])
    if chosen != "auto":
        return chosen
    return "pcapng" if str(config["capture.output"]).lower().endswith(PCAPNG_EXTENSIONS) else "pcap"


def rotates(config: Config) -> bool:
    return bool(config["capture.rotate_bytes"] or config["capture.rotate_seconds"])


def check_output(config: Config) -> None:
    """Settings the key table cannot judge one by one."""
    if rotates(config) and config["capture.output"] == "-":
        raise OutputConfigError("capture.rotate_bytes and capture.rotate_seconds need a file output, "
                                "not standard output")  # fmt: skip
    for key in ("capture.rotate_files", "capture.rotate_total_bytes", "capture.post_rotate_command"):
        if config[key] and not rotates(config):
            raise OutputConfigError(f"{key} needs capture.rotate_bytes or capture.rotate_seconds")
    if config["capture.compress"] != "none" and not rotates(config):
        raise OutputConfigError("capture.compress needs capture.rotate_bytes or capture.rotate_seconds")
    if rotates(config):  # without rotation the checks above already refused every closed-file key
        closed_file_settings(config)


def closed_file_settings(config: Config) -> ClosedFileSettings:
    """Issue 18 #3: what happens to each closed file; raises OutputConfigError.  Imported here:
    only a rotated run needs closed_files (and the subprocess, gzip and queue it brings)."""
    from . import closed_files

    try:
        command = closed_files.command_argv(str(config["capture.post_rotate_command"]))
    except closed_files.ClosedFilesConfigError as e:
        raise OutputConfigError(str(e)) from None
    if config["capture.compress"] == "zstd" and closed_files.zstandard_module() is None:
        raise OutputConfigError("capture.compress = zstd needs the zstandard package "
                                "(pip install zstandard)")  # fmt: skip
    total, limit = config["capture.rotate_total_bytes"], config["capture.rotate_bytes"]
    if total and limit and total <= limit:
        raise OutputConfigError("capture.rotate_total_bytes must be larger than capture.rotate_bytes "
                                "(the open file alone can grow to that)")  # fmt: skip
    return closed_files.ClosedFileSettings(str(config["capture.compress"]), command,
                                           config["capture.rotate_files"], total, limit)  # fmt: skip


def open_sink(config: Config, *, policy: str, application: str, if_name: str | None = None,
              capture_filter: str | None = None, linktype: int = link_format.LINKTYPE_ETHERNET,
              pcapng_input: PcapngReader | None = None) -> Sink:  # fmt: skip
    """The configured sink, its (first) file created; raises PcapWriteError.  ``policy``
    names the policy in the pcapng section comment; ``if_name`` and ``capture_filter``
    describe the interface in pcapng; ``linktype`` is the input's (issue 15).  A pcapng
    input gives a pcapng output of its own sections unless ``capture.format = pcap``."""
    check_output(config)
    snaplen = output_snaplen(config)
    comment = (
        f"Constricted by {application} with policy {policy}: TLS Application Data and "
        "matched QUIC short-header packets keep only their first bytes; original lengths are kept. "
        "In Wireshark/tshark turn TCP and TLS reassembly off to see every kept record header "
        "(-o tcp.desegment_tcp_streams:FALSE -o tls.desegment_ssl_records:FALSE "
        "-o tls.desegment_ssl_application_data:FALSE, or the profile in contrib/wireshark/)"
    )
    chosen = str(config["capture.format"])
    if pcapng_input is not None and chosen != "pcap":
        sections = PcapngSections(pcapng_input, snaplen, comment, application)

        def open_file(path: str) -> Sink:
            return PcapngSectionWriter(path, sections)
    elif pcapng_input is not None:
        linktype = _one_link_type(pcapng_input)

        def open_file(path: str) -> Sink:
            return PcapWriter(path, snaplen, linktype=linktype)
    elif output_format(config) == "pcapng":

        def open_file(path: str) -> Sink:
            return PcapngWriter(path, snaplen, comment=comment, application=application, if_name=if_name,
                                if_filter=capture_filter, linktype=linktype)  # fmt: skip
    else:

        def open_file(path: str) -> Sink:
            return PcapWriter(path, snaplen, linktype=linktype)

    output = str(config["capture.output"])
    if pcapng_input is not None and chosen == "pcap":
        pcapng_input.keep_blocks = False  # nothing passes through a classic output
        pcapng_input.blocks.clear()
    if not rotates(config):
        return open_file(output)
    names = FileNames(output, by_size=bool(config["capture.rotate_bytes"]))
    settings = closed_file_settings(config)
    from .closed_files import ClosedFiles

    hand_on = (lambda: ClosedFiles(settings)) if settings.active else None
    return RotatingSink(open_file, names, rotate_bytes=config["capture.rotate_bytes"],
                        rotate_seconds=config["capture.rotate_seconds"],
                        rotate_files=config["capture.rotate_files"],
                        closed_files=hand_on)  # fmt: skip


def _one_link_type(reader: PcapngReader) -> int:
    """The link type a classic output of this pcapng input has; its interfaces must agree,
    now and later in the file (the reader is told to refuse another one)."""
    if len(reader.linktypes) > 1:
        kinds = ", ".join(str(t) for t in reader.linktypes)
        raise OutputConfigError(f"capture.format = pcap needs one link type, but the pcapng input has "
                                f"interfaces of link types {kinds}; use capture.format = pcapng")  # fmt: skip
    reader.require_linktype = reader.linktype
    return reader.linktype
