#!/bin/sh
# Regenerate the man page from the argparse declarations (engine/commands/parsers.py).
# SOURCE_DATE_EPOCH pins the date in the header, so the same parsers give the same page.
set -eu
out=${1:-$(dirname "$0")/pcapconstrictor-afpacket.1}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1764806400} exec "${PYTHON:-python3}" -c \
    'import sys; from argparse_manpage.cli import main; sys.argv[0] = "argparse-manpage"; main()' \
    --module pcapconstrictor.engine.commands.parsers --function manual_parser \
    --project-name pcapconstrictor-afpacket --prog pcapconstrictor-afpacket --version 0.1.0 \
    --description "packet recorder that cuts encrypted payload and keeps every packet" \
    --manual-title "pcapconstrictor-afpacket manual" --output "$out"
