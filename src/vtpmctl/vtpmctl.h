/*
 * vtpmctl.h — the operator's CLI for vtpmmgrd: shared context, exit codes, argument
 * parsing, the admin-socket round trip and output helpers. One file per command family
 * (host.c, group.c, vtpm.c, start.c, audit.c); main.c dispatches.
 *
 * argv is untrusted input: every value is checked precisely (UUIDs, label patterns, group
 * names, digests, PCR lists, counts, paths) before anything is sent, and every byte that
 * comes back from the manager is parsed by common/mgr_proto and printed through output.c,
 * which escapes JSON strings and keeps terminal control bytes out of human output.
 */
#ifndef VTPM_VTPMCTL_H
#define VTPM_VTPMCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "common/mgr_proto.h"

#define VTPMCTL_VERSION		     "0.1.0"
#define VTPMCTL_DEFAULT_ADMIN_SOCKET "/run/vtpm/admin.sock"
#define VTPMCTL_DEFAULT_INST_SOCKET  "/run/vtpm/instance.sock"
#define VTPMCTL_DEFAULT_TIMEOUT_S    30
#define VTPMCTL_NAME_MAX	     64	  /* bytes of a group name (the store's limit) */
#define VTPMCTL_PATTERN_MAX	     256  /* bytes of a label pattern (the store's limit) */
#define VTPMCTL_LABEL_MAX	     1024 /* bytes of a process label (the manager's limit) */
#define VTPMCTL_MAX_PATTERNS	     64	  /* per group (the store's limit) */
#define VTPMCTL_MAX_DIGESTS	     64	  /* per group (the store's limit) */

/* Exit codes (documented in --help and vtpmctl(8)). */
enum ctl_exit {
	EXIT_OK = 0,
	EXIT_USAGE = 1,	      /* bad command line, or a refused confirmation */
	EXIT_UNREACHABLE = 2, /* cannot reach or talk to the manager */
	EXIT_REFUSED = 3,     /* the manager answered with a status other than ok */
	EXIT_LOCAL = 4,	      /* a local error (file, fork, exec, vtpmd failed to start) */
};

struct ctl {
	const char *admin_socket;
	bool json;
	int timeout_ms;
	/* The last response (valid after ctl_request returned EXIT_OK). */
	uint8_t *resp;
	size_t resp_len;
	struct mgr_msg *msg;
};

/* ---- argument parsing (main.c) ---- */

enum { OPT_END = -1, OPT_POSITIONAL = -2, OPT_ERROR = -3, OPT_DASHDASH = -4 };
/* Ids of the options every level accepts. */
enum { GOPT_HELP = 1000, GOPT_JSON, GOPT_ADMIN_SOCKET, GOPT_TIMEOUT, GOPT_VERSION };

struct optspec {
	const char *name; /* long name without "--" */
	bool has_arg;
	int id;
};

struct argiter {
	int argc;
	char **argv;
	int i;
	const char *cmd; /* "group create", for messages */
};

void argiter_init(struct argiter *it, int argc, char **argv, const char *cmd);
/*
 * Next argument: an option id from specs (or a global option id), OPT_POSITIONAL (*val
 * is the argument), OPT_DASHDASH ("--" seen; it->i is the index after it), OPT_END, or
 * OPT_ERROR (the message has been reported as a usage error through c).
 */
int argiter_next(struct ctl *c, struct argiter *it, const struct optspec *specs, const char **val);
/* Handle a global option id returned by argiter_next: 0 handled, or an exit code (-1 if
 * the id is not global). */
int ctl_global_opt(struct ctl *c, struct argiter *it, int id, const char *val, const char *help);
/* For a command family (host, group, vtpm): skip global options up to the subcommand.
 * Returns -1 with argc and argv moved so argv[0] is the subcommand, or an exit code (a usage
 * error saying `missing` when no subcommand is given). */
int ctl_subcommand(struct ctl *c, int *argc, char ***argv, const char *cmd, const char *missing,
		   const char *help);
/* Whether argv[0..argc) holds --help or -h before any "--". */
bool args_want_help(int argc, char **argv);

/* ---- reporting (output.c) ---- */

/* Print "vtpmctl: message" on stderr and, with --json, {"error": {...}} on stdout.
 * status: the manager's status, or -1. Returns code. */
int ctl_fail(struct ctl *c, int code, long status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The manager refused (EXIT_REFUSED): its status name and message (text may be NULL). */
int ctl_refused(struct ctl *c, uint32_t status, const char *what, const char *text);
/* A usage error: as ctl_fail(EXIT_USAGE), plus a hint naming cmd's --help. */
int ctl_usage(struct ctl *c, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ctl_help(const char *text);

/* ---- the admin-socket round trip (client.c) ---- */

/*
 * Send the message built in b and wait (c->timeout_ms) for its answer. Returns EXIT_OK
 * when the manager answered with MGR_OK (the answer is in c->msg), EXIT_REFUSED after
 * reporting the manager's status and message, EXIT_UNREACHABLE after reporting why the
 * manager could not be reached or answered nonsense, EXIT_LOCAL if b overflowed.
 * what: the action, for messages ("create group web").
 */
int ctl_request(struct ctl *c, struct mgr_builder *b, const char *what);
/* Connect only (used by start before it forks): EXIT_OK with *fd set, or an exit code
 * after reporting why. */
int ctl_connect(struct ctl *c, int *fd);
/* ctl_request over an already connected fd (closed on return). */
int ctl_request_fd(struct ctl *c, int fd, struct mgr_builder *b, const char *what);
/* The request buffer (MGR_MAX_MSG bytes) commands build into. */
uint8_t *ctl_reqbuf(void);

/* ---- output (output.c) ---- */

/* How a record is read: names some fields by context (in a vTPM record, NAME is the group). */
enum rec_kind { REC_GENERIC, REC_HOST, REC_GROUP, REC_VTPM, REC_AUDIT };

/* Records collected from one or more answers (a list request repeated with OFFSET while
 * the manager answers MORE). */
#define CTL_LIST_MAX 1000000u
struct reclist {
	size_t n;
	uint8_t **rec; /* each a copy of a MGR_F_RECORD value */
	size_t *len;
	bool truncated; /* MORE in an answer to a request that cannot page */
};
/* fill (may be NULL) adds the request's own fields; paging: the request takes OFFSET. */
int ctl_list(struct ctl *c, uint16_t type, void (*fill)(struct mgr_builder *b, const void *arg),
	     const void *arg, bool paging, const char *what, struct reclist *out);
void reclist_free(struct reclist *l);

/* Print records as a table (human) or {"<plural>": [ ... ]} (JSON). empty: the human line
 * when there is none. */
int out_list(struct ctl *c, enum rec_kind kind, const char *plural, const struct reclist *l,
	     const char *empty);
/* Print one object: the answer's top-level fields (without status) merged with its first
 * record (further records under "records"), as "key: value" lines or a JSON object. */
int out_show(struct ctl *c, enum rec_kind kind);

/* Properties: an ordered set of named values printed as "key: value" lines or a JSON
 * object. Adding a name again makes it a list (an identical value is dropped). */
struct props;
struct props *props_new(void);
void props_free(struct props *ps);
void props_add_str(struct props *ps, const char *name, const char *v);
void props_add_num(struct props *ps, const char *name, unsigned long long v);
void props_add_bool(struct props *ps, const char *name, bool v);
void props_add_pcrs(struct props *ps, const char *name, uint32_t mask);
/* The last answer's fields, as out_show reads them. */
void props_add_response(struct props *ps, struct ctl *c, enum rec_kind kind);
bool props_has(const struct props *ps, const char *name);
/* The first value's JSON text of a string or number property, or NULL. */
const char *props_get(const struct props *ps, const char *name);
void props_print(struct ctl *c, const struct props *ps);
/* The value of property key (a KEY/VALUE pair) in the last answer's first record, into out
 * (sanitized for a terminal). */
bool response_prop(struct ctl *c, const char *key, char *out, size_t cap);
/* Find a fixed-size field in the last answer: at the top level, else in its records. */
int response_get_fixed(struct ctl *c, uint16_t tag, void *out, size_t n);

/* JSON writer on stdout with correct string escaping (UTF-8 checked; invalid bytes
 * become U+FFFD). */
struct jw {
	FILE *f;
	int depth;
	bool need_comma[32];
};
void jw_init(struct jw *w, FILE *f);
void jw_obj_begin(struct jw *w);
void jw_obj_end(struct jw *w);
void jw_arr_begin(struct jw *w);
void jw_arr_end(struct jw *w);
void jw_key(struct jw *w, const char *k);
void jw_str(struct jw *w, const char *s);
void jw_strn(struct jw *w, const char *s, size_t n);
void jw_int(struct jw *w, long long v);
void jw_bool(struct jw *w, bool v);
void jw_raw(struct jw *w, const char *literal);
void jw_end(struct jw *w); /* newline and flush */

/* Copy s (n bytes) for a terminal: printable ASCII and valid UTF-8 (no C1 controls) kept,
 * everything else replaced by '?'. out has cap bytes (NUL-terminated, truncated). */
void out_sanitize(const char *s, size_t n, char *out, size_t cap);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void hex_encode(const uint8_t *p, size_t n, char *out);

/* ---- argument checks (main.c) ---- */

/* Each returns 0, or -1 with a precise reason in err. */
int check_group_name(const char *s, char *err, size_t errlen);
/* A group named by NAME or by UUID: check, and put as MGR_F_NAME or MGR_F_GROUP_UUID. */
int check_group_ref(const char *s, char *err, size_t errlen);
void put_group_ref(struct mgr_builder *b, const char *s);
/* user:role:type[:level]; pattern: '*' allowed as a whole field or as the level. */
int check_label(const char *s, bool pattern, char *err, size_t errlen);
int parse_uuid_arg(const char *s, uint8_t out[16], char *err, size_t errlen);
int parse_hex_digest(const char *s, uint8_t out[32], char *err, size_t errlen);
int check_socket_path(const char *s, char *err, size_t errlen);

/* ---- command families ---- */

int cmd_host(struct ctl *c, int argc, char **argv);
int cmd_group(struct ctl *c, int argc, char **argv);
int cmd_vtpm(struct ctl *c, int argc, char **argv);
int cmd_start(struct ctl *c, int argc, char **argv);
int cmd_launch(struct ctl *c, int argc, char **argv);
int cmd_status(struct ctl *c, int argc, char **argv);
int cmd_doctor(struct ctl *c, int argc, char **argv);

/* ---- starting a registered vtpmd (start.c; launch.c uses it too) ---- */

struct start_args {
	uint8_t uuid[16];
	char uuid_text[37];
	const char *label;
	const char *state_dir;
	const char *manager_socket;
	char vtpmd[4096];
	bool wait;   /* vtpmctl start --wait */
	bool detach; /* vtpmd in its own session, stdin and stdout on /dev/null */
	char **extra;
	int nextra;
};

/* Connect to the manager, fork a child that stops itself, register a->label for its pid
 * (and a->uuid: that pid may open no other vTPM), let it exec `vtpmd socket --tpm2
 * --tpmstate dir=... --manager ... --uuid ... EXTRA`. *pid: the running vtpmd. An exit code
 * (reported) on failure; the child is then reaped. */
int vtpmd_spawn(struct ctl *c, const struct start_args *a, pid_t *pid);
/* Option ids of start and launch's shared options (--label, --state-dir, --manager-socket,
 * --vtpmd). */
enum { SOPT_LABEL = 900, SOPT_STATE_DIR, SOPT_MANAGER, SOPT_VTPMD };
/* A shared option (or the UUID, OPT_POSITIONAL) into a (vtpmd: the --vtpmd path): 0 taken,
 * -1 not one of them, else an exit code (reported). */
int start_opt(struct ctl *c, struct argiter *it, int id, const char *val, struct start_args *a,
	      const char **vtpmd);
/* After the options: UUID, --label, --state-dir given and a directory; the vtpmd executable
 * found. 0, or an exit code (reported). */
int start_check(struct ctl *c, struct argiter *it, struct start_args *a, const char *vtpmd);
/* Find vtpmd next to vtpmctl's executable, else in $PATH. 0, or -1. */
int find_vtpmd(char *out, size_t cap);
bool is_executable_file(const char *path);
/* A wait status in words (into out); returns the exit code it maps to (128+N for signal N). */
int describe_exit(int st, char *out, size_t cap);
void sleep_ms(long ms);
int cmd_audit(struct ctl *c, int argc, char **argv);

extern const char ctl_main_help[];
extern const char ctl_host_help[];
extern const char ctl_group_help[];
extern const char ctl_vtpm_help[];
extern const char ctl_start_help[];
extern const char ctl_launch_help[];
extern const char ctl_status_help[];
extern const char ctl_doctor_help[];
extern const char ctl_audit_help[];
/* The exit-status paragraph shared by every help text. */
#define CTL_HELP_EXIT                                                                              \
	"Exit status:\n"                                                                           \
	"  0  success\n"                                                                           \
	"  1  usage error (bad option or argument; a deletion not confirmed)\n"                    \
	"  2  cannot reach the manager: admin socket missing, connection refused, permission\n"    \
	"     denied, no answer within the timeout, or an answer that does not parse\n"            \
	"  3  the manager refused the request (its status and message are printed)\n"              \
	"  4  local error (a file to hash, the state directory, starting vtpmd)\n"

#define CTL_HELP_GLOBAL                                                                            \
	"Global options (accepted before or after the command):\n"                                 \
	"  --admin-socket PATH  the manager's admin socket (default $VTPM_ADMIN_SOCKET,\n"         \
	"                       else " VTPMCTL_DEFAULT_ADMIN_SOCKET ")\n"                          \
	"  --json               print JSON on stdout (errors too, as {\"error\": {...}})\n"        \
	"  --timeout SECONDS    wait at most this long for the manager's answer (1-3600,\n"        \
	"                       default 30)\n"                                                     \
	"  -h, --help           print help for the command and exit\n"

#endif
