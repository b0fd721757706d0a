"""Wire and file structures, each declared once as a construct schema.

Nothing here imports the rest of the project (STYLE.md): ``engine`` reads
packets through :class:`~pcapconstrictor.formats.layout.Layout` views derived
from these schemas, kept in the generated ``formats/derived.py`` with the wire
constants (``python -m pcapconstrictor.formats.derive``): a run imports no construct.
"""
