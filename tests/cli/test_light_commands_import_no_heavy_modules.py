"""`import shoal.cli`, building the app (what `shoal --help` does) and `shoal version` load none of the
heavy packages: the server, the database, Kubernetes, the HTTP client, Rich, YAML or pydantic come in
with the commands that use them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("fastapi", "sqlalchemy", "lightkube", "uvicorn", "httpx", "rich", "yaml", "pydantic")


def _loaded_after(code: str) -> list[str]:
    probe = (
        "import json, sys\n"
        f"{code}\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded: list[str] = json.loads(out.splitlines()[-1])
    return loaded


def test_importing_the_cli_loads_no_heavy_package() -> None:
    assert _loaded_after("import shoal.cli") == []


def test_building_every_command_loads_no_heavy_package() -> None:
    assert _loaded_after("import shoal.cli\nshoal.cli.build_app()") == []


def test_version_loads_no_heavy_package_and_not_even_typer() -> None:
    code = (
        "import io, contextlib, shoal.cli\n"
        "sys.argv = ['shoal', 'version']\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    shoal.cli.main()\n"
        "assert buf.getvalue().startswith('shoal '), buf.getvalue()\n"
        "assert 'typer' not in sys.modules\n"
    )
    assert _loaded_after(code) == []
