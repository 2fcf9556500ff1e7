"""Issue 6: the .deb and .rpm build, lint clean, install, run, upgrade and purge for real.

Needs root (the venv is built at its final path in a private mount namespace, dpkg -i installs
system-wide), dpkg, rpm, lintian and rpmlint; .ci/run installs them. Everything installed here is
purged again, whatever the outcome. That no plaintext keyring backend ships is checked on the
declared dependencies everywhere, and on the built packages' payload with the rest.
"""

from __future__ import annotations

import grp
import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest

from helpers import IN_CI, KEY, toml_dumps

ROOT = Path(__file__).resolve().parent.parent
NAME = "anthropic-compliance-input"
TOOLS = ("dpkg", "dpkg-deb", "rpm", "lintian", "rpmlint", "unshare")
READY = os.geteuid() == 0 and all(shutil.which(t) for t in TOOLS)
needs_tools = pytest.mark.skipif(not READY and not IN_CI, reason=f"needs root and {', '.join(TOOLS)}")
PLAINTEXT_BACKENDS = re.compile(r"keyrings[._-](alt|cryptfile)\b", re.I)  # keyring would store the key in a file
UNITS = [f"{NAME}@.service", f"{NAME}@.timer", f"{NAME}-run@.service"]
INSTALLED = [Path(f"/opt/{NAME}"), Path(f"/etc/{NAME}"), Path(f"/var/lib/{NAME}"), Path(f"/usr/bin/{NAME}"),
             Path(f"/usr/share/doc/{NAME}"), Path(f"/usr/share/man/man1/{NAME}.1.gz"),
             *(Path("/lib/systemd/system") / unit for unit in UNITS)]


def sh(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} -> {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def version() -> str:
    return sh(sys.executable, "-c", "import anthropic_compliance_input as a; print(a.__version__)").stdout.strip()


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict[str, Path]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    sh(str(ROOT / "packaging/build.sh"), cwd=ROOT, env=env)
    v = version()
    out = tmp_path_factory.mktemp("packages")
    built = {"deb": ROOT / f"dist/{NAME}_{v}-1_amd64.deb", "rpm": ROOT / f"dist/{NAME}-{v}-1.x86_64.rpm"}
    result = {k: Path(shutil.copy(p, out)) for k, p in built.items()}
    sh(str(ROOT / "packaging/build.sh"), cwd=ROOT, env={**env, "PACK_ONLY": "1", "VERSION": f"{v}.1"})
    result["deb-next"] = Path(shutil.copy(ROOT / f"dist/{NAME}_{v}.1-1_amd64.deb", out))
    return result


@needs_tools
def test_both_packages_are_lint_clean(packages):
    lintian = sh("lintian", str(packages["deb"]), check=False)
    findings = [l for l in (lintian.stdout + lintian.stderr).splitlines() if l[:2] in ("E:", "W:")]
    assert findings == [] and lintian.returncode == 0, lintian.stdout + lintian.stderr
    rpmlint = sh("rpmlint", "-c", str(ROOT / "packaging/rpmlint.toml"), str(packages["rpm"]), check=False)
    assert "0 errors, 0 warnings" in rpmlint.stdout, rpmlint.stdout


@needs_tools
def test_deb_metadata_and_payload(packages):
    info = sh("dpkg-deb", "-I", str(packages["deb"])).stdout
    py = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert f"Depends: {py}, libc6 (>= 2." in info and f"Version: {version()}-1" in info
    files = sh("dpkg-deb", "-c", str(packages["deb"])).stdout
    for path in (f"./usr/share/man/man1/{NAME}.1.gz", f"./usr/share/doc/{NAME}/copyright",
                 f"./usr/share/doc/{NAME}/changelog.Debian.gz", f"./etc/{NAME}/config.toml",
                 f"./opt/{NAME}/venv/pyvenv.cfg"):
        assert path in files, path
    conf = sorted(str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*") if p.is_file())
    for rel in conf:
        assert f"./usr/share/doc/{NAME}/examples/{rel}" in files, rel
    assert f"/usr/bin/{NAME} -> /opt/{NAME}/venv/bin/{NAME}" in files
    conffiles = sh("sh", "-c", f"dpkg-deb --ctrl-tarfile {packages['deb']} | tar -xO ./conffiles").stdout
    assert conffiles.strip() == f"/etc/{NAME}/config.toml"


def _purge() -> None:
    sh("dpkg", "-P", NAME, check=False)


@needs_tools
def test_deb_install_run_upgrade_and_purge(packages, tmp_path):
    _purge()
    try:
        sh("dpkg", "-i", str(packages["deb"]))
        assert sh(f"/usr/bin/{NAME}", "--version").stdout.strip() == f"{NAME} {version()}"
        cfg = Path(f"/opt/{NAME}/venv/pyvenv.cfg").read_text()
        assert "home = /usr/bin" in cfg
        state_dir = Path(f"/var/lib/{NAME}")
        assert oct(state_dir.stat().st_mode & 0o7777) == "0o2770"
        assert grp.getgrgid(state_dir.stat().st_gid).gr_name == NAME
        assert sh("getent", "passwd", NAME).stdout.split(":")[6].strip() == "/usr/sbin/nologin"

        # the per-tenant template units, as systemd reads them with the package's paths in place
        verify = sh("systemd-analyze", "verify", f"{NAME}@acme.service", f"{NAME}@acme.timer",
                    f"{NAME}-run@acme.service", check=False)
        assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr

        # demo as root and as an unprivileged user (no HOME, no config, no key)
        root_demo = sh(f"/usr/bin/{NAME}", "demo", "--count", "50", env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        assert len(root_demo.stdout.splitlines()) == 50 + 67  # and the incident
        user_demo = sh("runuser", "-u", "nobody", "--", f"/usr/bin/{NAME}", "demo", "--count", "30", "--no-incident",
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        assert len(user_demo.stdout.splitlines()) == 30 and all(json.loads(l)["id"] for l in user_demo.stdout.splitlines())

        # run against the simulator with the packaged state directory, the way a shipper would
        from anthropic_compliance_input.simulator import FeedModel, SimServer

        model = FeedModel(keys={KEY: {"read:compliance_activities"}}, side_effects=False)
        import time

        model.generate(120, time.time() - 3600, time.time() - 120)
        with SimServer(model) as server:
            conf = tmp_path / "config.toml"
            conf.write_text(toml_dumps({"api": {"base_url": server.url},
                                        "state": {"path": f"/var/lib/{NAME}/test.db"}}))
            run = sh(f"/usr/bin/{NAME}", "--config", str(conf), "run",
                     env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ANTHROPIC_COMPLIANCE_API_KEY": KEY})
        assert len(run.stdout.splitlines()) == 120
        assert Path(f"/var/lib/{NAME}/test.db").exists()
        assert not list(Path(f"/opt/{NAME}").rglob("*.pyc.*"))  # nothing compiled at run time

        # upgrade keeps an edited config (a changed packaged one would land beside it as .dpkg-dist)
        conffile = Path(f"/etc/{NAME}/config.toml")
        conffile.write_text(conffile.read_text() + "\n# edited by the operator\n")
        edited = conffile.read_text()
        sh("dpkg", "-i", "--force-confdef", "--force-confold", str(packages["deb-next"]))
        assert sh("dpkg-query", "-W", "-f", "${Version}", NAME).stdout == f"{version()}.1-1"
        assert conffile.read_text() == edited
        assert Path(f"/var/lib/{NAME}/test.db").exists()  # state survives an upgrade
    finally:
        _purge()
    left = [str(p) for p in INSTALLED if p.exists() or p.is_symlink()]
    assert left == []
    assert sh("getent", "group", NAME, check=False).returncode == 2
    assert sh("getent", "passwd", NAME, check=False).returncode == 2


@needs_tools
def test_rpm_payload_scripts_and_a_run_from_a_test_root(packages, tmp_path):
    listing = sh("rpm", "-qlp", str(packages["rpm"])).stdout.splitlines()
    for path in (f"/usr/bin/{NAME}", f"/etc/{NAME}/config.toml", f"/usr/share/man/man1/{NAME}.1.gz",
                 f"/usr/share/doc/{NAME}/examples/syslog-ng/{NAME}.conf", f"/usr/share/licenses/{NAME}/LICENSE"):
        assert path in listing, path
    assert sh("rpm", "-qp", "--configfiles", str(packages["rpm"])).stdout.strip() == f"/etc/{NAME}/config.toml"
    scripts = sh("rpm", "-qp", "--scripts", str(packages["rpm"])).stdout
    assert "groupadd --system anthropic-compliance-input" in scripts and 'if [ "$1" = "purge" ]' in scripts
    assert "useradd --system" in scripts
    for rel in sorted(str(f.relative_to(ROOT / "conf")) for f in (ROOT / "conf").rglob("*") if f.is_file()):
        assert f"/usr/share/doc/{NAME}/examples/{rel}" in listing, rel  # every snippet, as in the .deb
    for unit in UNITS:
        assert f"/usr/lib/systemd/system/{unit}" in listing, unit
    requires = sh("rpm", "-qp", "--requires", str(packages["rpm"])).stdout
    assert "glibc >= 2." in requires and f"python{sys.version_info.major}.{sys.version_info.minor}" in requires

    root = tmp_path / "rpmroot"
    root.mkdir()
    sh("rpm", "--root", str(root), "--initdb")
    sh("rpm", "--root", str(root), "-ivh", "--nodeps", "--noscripts", str(packages["rpm"]))
    assert (root / f"etc/{NAME}/config.toml").exists()
    demo = sh("unshare", "--mount", "--propagation", "private", "sh", "-c",
              f"mount --bind {root}/opt /opt && /opt/{NAME}/venv/bin/{NAME} demo --count 25 --no-incident",
              env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert len(demo.stdout.splitlines()) == 25


def test_no_plaintext_keyring_backend_is_pulled_in():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in declared + (requires(NAME) or []):  # what the build reads, what is installed
        assert not PLAINTEXT_BACKENDS.match(requirement), requirement


@needs_tools
def test_no_plaintext_keyring_backend_is_in_the_packages(packages):
    deb = sh("dpkg-deb", "-c", str(packages["deb"])).stdout
    rpm = sh("rpm", "-qlp", str(packages["rpm"])).stdout
    assert "site-packages/keyring/" in deb and "site-packages/keyring/" in rpm  # the listing is what we think
    for listing in (deb, rpm):
        assert not [line for line in listing.splitlines() if PLAINTEXT_BACKENDS.search(line)
                    or "site-packages/keyrings/" in line]
