"""The README's two commands, the Dockerfile and CI stay in agreement."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text[: text.find("\n## ")]  # the two commands open the README
    return [line.strip() for line in head.splitlines() if line.startswith("    ")]


def test_readme_opens_with_a_run_and_a_test_command() -> None:
    run, test = readme_commands()[:2]
    assert run.startswith("python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/footfall ")
    assert test == "make check"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    # The one addition allowed: installing the browser the tests drive when it is missing.
    skip = ("#", "set ", "cd ", "[ -x /usr/bin/chromium ] || .ci/install-chromium")
    commands = [line for line in ci if line.strip() and not line.startswith(skip)]
    assert commands == [readme_commands()[1]]


def test_dockerfile_installs_like_the_readme() -> None:
    install = readme_commands()[0].rsplit(" && ", 1)[0]  # the setup part, without the run
    dockerfile = (ROOT / "Dockerfile").read_text()
    runs = re.findall(r"^RUN (.+)$", dockerfile, flags=re.M)
    assert install in runs
    assert re.search(r'^ENTRYPOINT \["/app/.venv/bin/footfall", "proxy"\]', dockerfile, flags=re.M)
    assert re.search(r"^USER footfall$", dockerfile, flags=re.M)
    assert 'VOLUME ["/data"]' in dockerfile


def test_makefile_check_runs_lint_types_and_tests() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^check: lint typecheck test$", makefile, flags=re.M)
