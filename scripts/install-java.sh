#!/usr/bin/env bash
# A Java runtime for the Spark engine's tests (pyspark starts a JVM), from Debian's packages.
# Idempotent: nothing to do once a Java 17+ is on the PATH.
set -euo pipefail

if command -v java >/dev/null && java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; then
    exit 0
fi
SUDO=""
if [[ "$(id -u)" != 0 ]]; then
    SUDO="sudo"
fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends openjdk-17-jre-headless
