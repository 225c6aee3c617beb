/* bench/ptback.c — the platform port of the Microsoft TPM 2.0 simulator protocol, for
 * benchmarking `vtpmd passthrough --tcti mssim:path=SOCK` against a swtpm (bench/passthrough).
 *
 *   ptback PATH
 *
 * tpm2-tss's mssim TCTI keeps one connection to the TPM for its whole life, as the device TCTI
 * does with /dev/tpmrm0, where the swtpm TCTI connects anew for every command. It frames each
 * command with the TCG "send command" header (TPM_SEND_COMMAND, locality, size) and expects the
 * response size before the response and four zero bytes after it: swtpm's data channel speaks
 * that framing too (swtpm 0.7: tpmlib_handle_tcg_tpm2_cmd_header). What swtpm does not serve is
 * the simulator's platform port (PATH.ctrl next to the data socket PATH), on which the TCTI
 * sends MS_SIM_POWER_ON and MS_SIM_NV_ON when it is opened and TPM_SESSION_END when it is
 * closed. This program listens on the unix socket PATH and answers every 4-byte platform
 * command with a 4-byte 0 (success), one connection at a time, until TPM_SESSION_END or EOF.
 * It never touches the TPM: the swtpm is started with --flags not-need-init,startup-clear.
 *
 * Exit status: runs until killed; 1 with a message if PATH cannot be served.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MS_SIM_SESSION_END 20u

static int read_full(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void serve(int c)
{
	static const uint8_t ok[4] = {0, 0, 0, 0};
	uint8_t cmd[4];

	while (read_full(c, cmd, sizeof(cmd)) == 0) {
		uint32_t code = (uint32_t)cmd[0] << 24 | (uint32_t)cmd[1] << 16 |
				(uint32_t)cmd[2] << 8 | cmd[3];
		if (code == MS_SIM_SESSION_END)
			break;
		if (write(c, ok, sizeof(ok)) != (ssize_t)sizeof(ok))
			break;
	}
	close(c);
}

int main(int argc, char **argv)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: ptback PATH\n");
		return 2;
	}
	if (strlen(argv[1]) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "ptback: socket path too long: %s\n", argv[1]);
		return 1;
	}
	memcpy(sun.sun_path, argv[1], strlen(argv[1]) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || listen(fd, 4) != 0) {
		fprintf(stderr, "ptback: cannot listen on %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (c >= 0)
			serve(c);
		else if (errno != EINTR && errno != ECONNABORTED)
			break;
	}
	fprintf(stderr, "ptback: accept on %s: %s\n", argv[1], strerror(errno));
	return 1;
}
