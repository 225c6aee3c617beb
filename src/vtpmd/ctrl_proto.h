/*
 * ctrl_proto.h — swtpm's control channel: command codes, flags and result codes.
 * Values are swtpm's (include/swtpm/tpm_ioctl.h) and libtpms' (tpm_error.h); see
 * ../shared/PROTOCOLS.md section 1. Integers are big-endian on the socket.
 */
#ifndef VTPMD_CTRL_PROTO_H
#define VTPMD_CTRL_PROTO_H

enum ctrl_cmd {
	CMD_GET_CAPABILITY = 0x01,
	CMD_INIT = 0x02,
	CMD_SHUTDOWN = 0x03,
	CMD_GET_TPMESTABLISHED = 0x04,
	CMD_SET_LOCALITY = 0x05,
	CMD_HASH_START = 0x06,
	CMD_HASH_DATA = 0x07,
	CMD_HASH_END = 0x08,
	CMD_CANCEL_TPM_CMD = 0x09,
	CMD_STORE_VOLATILE = 0x0a,
	CMD_RESET_TPMESTABLISHED = 0x0b,
	CMD_GET_STATEBLOB = 0x0c,
	CMD_SET_STATEBLOB = 0x0d,
	CMD_STOP = 0x0e,
	CMD_GET_CONFIG = 0x0f,
	CMD_SET_DATAFD = 0x10,
	CMD_SET_BUFFERSIZE = 0x11,
	CMD_GET_INFO = 0x12,
	CMD_LOCK_STORAGE = 0x13,
};

enum ptm_cap {
	PTM_CAP_INIT = 1u << 0,
	PTM_CAP_SHUTDOWN = 1u << 1,
	PTM_CAP_GET_TPMESTABLISHED = 1u << 2,
	PTM_CAP_SET_LOCALITY = 1u << 3,
	PTM_CAP_HASHING = 1u << 4,
	PTM_CAP_CANCEL_TPM_CMD = 1u << 5,
	PTM_CAP_STORE_VOLATILE = 1u << 6,
	PTM_CAP_RESET_TPMESTABLISHED = 1u << 7,
	PTM_CAP_GET_STATEBLOB = 1u << 8,
	PTM_CAP_SET_STATEBLOB = 1u << 9,
	PTM_CAP_STOP = 1u << 10,
	PTM_CAP_GET_CONFIG = 1u << 11,
	PTM_CAP_SET_DATAFD = 1u << 12,
	PTM_CAP_SET_BUFFERSIZE = 1u << 13,
	PTM_CAP_GET_INFO = 1u << 14,
	PTM_CAP_SEND_COMMAND_HEADER = 1u << 15,
	PTM_CAP_LOCK_STORAGE = 1u << 16,
};

#define PTM_INIT_FLAG_DELETE_VOLATILE 0x1u
#define PTM_BLOB_TYPE_PERMANENT	      1u
#define PTM_BLOB_TYPE_VOLATILE	      2u
#define PTM_BLOB_TYPE_SAVESTATE	      3u
#define PTM_STATE_FLAG_DECRYPTED      1u
#define PTM_STATE_FLAG_ENCRYPTED      2u
#define PTM_CONFIG_FLAG_FILE_KEY      0x1u
#define PTM_CONFIG_FLAG_MIGRATION_KEY 0x2u
#define PTM_GETINFO_SIZE	      3072u

/* Result codes (TPM 1.2 style, used on the control channel even for a TPM 2). */
#define RES_SUCCESS	  0x00u
#define RES_BAD_PARAMETER 0x03u
#define RES_FAIL	  0x09u
#define RES_BAD_ORDINAL	  0x0au
#define RES_KEYNOTFOUND	  0x0du
#define RES_SIZE	  0x17u
#define RES_IOERROR	  0x1fu
#define RES_DECRYPT_ERROR 0x21u
#define RES_BAD_VERSION	  0x2eu
#define RES_BAD_LOCALITY  0x3du
#define RES_RETRY	  0x800u

/* Largest blob accepted by CMD_SET_STATEBLOB and largest CMD_HASH_DATA payload. */
#define CTRL_MAX_BLOB (1u << 20)

#endif
