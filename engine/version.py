"""The program's name and version, as the CLI, banners and file comments print them."""

PROG = "pcapconstrictor-afpacket"
VERSION = "0.1.0"
