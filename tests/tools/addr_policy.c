/* Prints vp_addr_is_private's verdict for each address read from stdin, one a line:
 * "refuse ADDR" or "allow ADDR" ("invalid ADDR" when inet_pton rejects it).
 * Driven by tests/http/suite_addr_policy.sh against the IANA registries' table. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "server/fetch.h"

int main(void)
{
    char line[128];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        struct sockaddr_in v4 = {.sin_family = AF_INET};
        struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
        const struct sockaddr *sa = NULL;
        if (inet_pton(AF_INET, line, &v4.sin_addr) == 1)
            sa = (const struct sockaddr *)&v4;
        else if (inet_pton(AF_INET6, line, &v6.sin6_addr) == 1)
            sa = (const struct sockaddr *)&v6;
        printf("%s %s\n", !sa ? "invalid" : vp_addr_is_private(sa) ? "refuse" : "allow", line);
    }
    return 0;
}
