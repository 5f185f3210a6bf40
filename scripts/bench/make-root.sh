#!/usr/bin/env bash
# A minimal guest tree for `ci-agent run --root DIR`: the account files, sshd_config and the
# directories the standard seed's modules write to, as on a fresh Debian image. Under a root
# other than `/` the agent runs in recording mode (commands such as useradd are recorded,
# not executed), so this measures the agent's own work on the standard seed.
#   scripts/bench/make-root.sh DIR
set -euo pipefail
D=$1
mkdir -p "$D"/etc/ssh/sshd_config.d "$D"/etc/sudoers.d "$D"/home "$D"/root "$D"/var/lib "$D"/var/tmp "$D"/var/log "$D"/tmp "$D"/run
printf 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n' > "$D/etc/passwd"
printf 'root:x:0:\nadm:x:4:\nsudo:x:27:\nusers:x:100:\n' > "$D/etc/group"
printf 'root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\n' > "$D/etc/shadow"
printf 'root:*::\nadm:*::\nsudo:*::\nusers:*::\n' > "$D/etc/gshadow"
chmod 640 "$D/etc/shadow" "$D/etc/gshadow"
printf 'debian-template\n' > "$D/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdebian-template\n' > "$D/etc/hosts"
printf 'Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\n' > "$D/etc/ssh/sshd_config"
printf '0123456789abcdef0123456789abcdef\n' > "$D/etc/machine-id"
