/*
 * p11import: put a secret-key object on a PKCS#11 token, for the tests
 * (pkcs11-tool of OpenSC 0.23 cannot write a generic secret key).
 *   p11import MODULE TOKEN-LABEL PIN-FILE OBJECT-LABEL KEY-FILE [FLAG...]
 * FLAG: sensitive (CKA_SENSITIVE true), noextract (CKA_EXTRACTABLE false),
 * aes (a CKK_AES key of the first 32 bytes instead of CKK_GENERIC_SECRET).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>

static size_t
readfile(const char *path, char *buf, size_t size)
{
	FILE	*f;
	size_t	 n;

	if ((f = fopen(path, "r")) == NULL) {
		perror(path);
		exit(1);
	}
	n = fread(buf, 1, size - 1, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	return n;
}

int
main(int argc, char **argv)
{
	CK_FUNCTION_LIST *m;
	CK_SLOT_ID	 slots[16];
	CK_ULONG	 nslots = 16, i;
	CK_TOKEN_INFO	 ti;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE obj;
	CK_OBJECT_CLASS	 cls = CKO_SECRET_KEY;
	CK_KEY_TYPE	 kt = CKK_GENERIC_SECRET;
	CK_BBOOL	 yes = CK_TRUE, sens = CK_FALSE, extr = CK_TRUE;
	char		 pin[256], key[4096], label[33];
	size_t		 npin, nkey, len;
	CK_RV		 rv;
	int		 a, found = 0;

	if (argc < 6) {
		fprintf(stderr, "usage: p11import MODULE TOKEN PIN-FILE LABEL "
		    "KEY-FILE [sensitive|noextract|aes]...\n");
		return 2;
	}
	npin = readfile(argv[3], pin, sizeof(pin));
	nkey = readfile(argv[5], key, sizeof(key));
	for (a = 6; a < argc; a++) {
		if (strcmp(argv[a], "sensitive") == 0)
			sens = CK_TRUE;
		else if (strcmp(argv[a], "noextract") == 0)
			extr = CK_FALSE;
		else if (strcmp(argv[a], "aes") == 0) {
			kt = CKK_AES;
			if (nkey > 32)
				nkey = 32;
		}
	}
	if ((m = p11_kit_module_load(argv[1], 0)) == NULL ||
	    p11_kit_module_initialize(m) != CKR_OK) {
		fprintf(stderr, "p11import: cannot load %s\n", argv[1]);
		return 1;
	}
	if (m->C_GetSlotList(CK_TRUE, slots, &nslots) != CKR_OK)
		return 1;
	for (i = 0; i < nslots && !found; i++) {
		if (m->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		len = strlen(argv[2]);
		memset(label, ' ', 32);
		memcpy(label, argv[2], len > 32 ? 32 : len);
		if (memcmp(ti.label, label, 32) == 0)
			found = 1;
	}
	if (!found) {
		fprintf(stderr, "p11import: no token %s\n", argv[2]);
		return 1;
	}
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &sens, sizeof(sens) },
		{ CKA_EXTRACTABLE, &extr, sizeof(extr) },
		{ CKA_LABEL, argv[4], strlen(argv[4]) },
		{ CKA_VALUE, key, nkey },
	};
	if ((rv = m->C_OpenSession(slots[i - 1], CKF_SERIAL_SESSION | CKF_RW_SESSION,
	    NULL, NULL, &s)) != CKR_OK ||
	    (rv = m->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, npin)) != CKR_OK ||
	    (rv = m->C_CreateObject(s, t, sizeof(t) / sizeof(t[0]), &obj)) !=
	    CKR_OK) {
		fprintf(stderr, "p11import: failed: 0x%lx\n", (unsigned long)rv);
		return 1;
	}
	m->C_CloseSession(s);
	p11_kit_module_finalize(m);
	p11_kit_module_release(m);
	return 0;
}
