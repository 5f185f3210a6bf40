#!/bin/bash
# Kept for the commands people already type: the install step is scripts/install-deps.sh,
# which installs every tool of scripts/tools.tsv.
exec bash "$(dirname "$0")/../../scripts/install-deps.sh" "$@"
