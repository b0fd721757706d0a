"""Wire and file structures, each declared once as a construct schema.

Nothing here imports the rest of the project (STYLE.md): ``engine`` reads
packets through :class:`~pcapconstrictor.formats.layout.Layout` views derived
from these schemas.
"""
