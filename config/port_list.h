/* TCP ports as the url_ports option spells them: "any", or ports and ranges separated by
 * commas ("80,443,8000-8999"; spaces around each allowed), every port 1-65535. */
#ifndef VP_PORT_LIST_H
#define VP_PORT_LIST_H

#include <stdbool.h>
#include <stddef.h>

/* 0, or -1 with the reason in why ("port 0 is out of 1-65535"). */
int vp_port_list_check(const char *list, char *why, size_t why_cap);

/* Whether list (vp_port_list_check passed it) holds port; NULL or "any" holds every port. */
bool vp_port_list_has(const char *list, unsigned port);

#endif
