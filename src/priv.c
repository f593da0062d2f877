/*
 * priv.c: the process that holds keys: privileges dropped to [proxy]
 * user/group after setup.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "xdrproxy.h"

int
priv_drop(const struct config *cf, char **cause)
{
	*cause = NULL;
	if (cf->cf_user == NULL && cf->cf_group == NULL)
		return 0;
	*cause = strdup("user/group: not supported yet");
	return -1;
}
