#!/bin/bash
# OpenLDAP for the LDAP sign-in test (tests/access/test_ldap.py): Debian's
# slapd and ldap-utils. Its own instance is not started (apt.sh's policy-rc.d);
# the test runs a throw-away slapd on a temporary folder and port.
set -euo pipefail
source "$(dirname "$0")/apt.sh"
apt_install slapd ldap-utils
