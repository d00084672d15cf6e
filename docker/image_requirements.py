"""Print requirements.txt without the packages the image does not need (image-excludes.txt).

    python docker/image_requirements.py requirements.txt docker/image-excludes.txt

The Dockerfile installs what this prints; tests/operations/test_deployment_files.py checks
that every excluded name is pinned in requirements.txt and that no code the image runs
imports an excluded package.
"""
import re
import sys


def normalize(name: str) -> str:
    """PEP 503 name normalisation: `Foo_Bar.baz` and `foo-bar-baz` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    spec = line.split("#", 1)[0].strip()
    return normalize(re.split(r"[\[=<>~!;@ ]", spec, maxsplit=1)[0]) if spec else ""


def excluded_names(text: str) -> set[str]:
    return {requirement_name(line) for line in text.splitlines()} - {""}


def image_requirements(requirements: str, excludes: str) -> str:
    drop = excluded_names(excludes)
    return "".join(
        line + "\n" for line in requirements.splitlines() if requirement_name(line) not in drop
    )


if __name__ == "__main__":
    with open(sys.argv[1]) as req, open(sys.argv[2]) as exc:
        sys.stdout.write(image_requirements(req.read(), exc.read()))
