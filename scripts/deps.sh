#!/bin/sh
# Installs every Debian package the tests and the demo need, only when one is
# missing, so `make test` on a machine that has them costs nothing.
set -eu
# SIP interop peers and captures (issue 2), TPM (3), updater and rauc interop
# (4), netfilter inspection (5), the emulated phone and arm unit tests (6),
# the fleet store on PostgreSQL and the fleet benchmarks' nginx reference
# (11), the Argon2 reference tool for the admin password hashes and the
# headless browser the admin console's tests drive (13), the
# syslog-over-TLS collector for security events and the SIPVicious scanners
# (svmap, svwar, svcrack) that attack the phone in its tests (14), the G.722
# reference encoder/decoder, sound devices without a sound card and the
# terminal phone's test terminal (15), the static server for TUF
# repositories and Kamailio's subscriber table on PostgreSQL (12); for the
# audio quality tests (15) a speaking voice, an audio toolbox and the
# NFQUEUE rules of the network emulator (the kernel has no netem).
PKGS="kamailio kamailio-tls-modules kamailio-postgres-modules baresip-core sip-tester tcpdump tshark openssl iproute2 ca-certificates
pulseaudio pulseaudio-utils
swtpm swtpm-tools
rauc squashfs-tools libubootenv-tool u-boot-tools
nftables
postgresql nginx
rsyslog rsyslog-gnutls sipvicious
argon2 chromium
qemu-system-arm qemu-user-static u-boot-qemu mtools e2fsprogs dosfstools cpio fdisk kmod socat
ffmpeg tmux
espeak-ng sox iptables"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends $missing
