/* Prints the built-in PRM system prompt byte for byte (for the spec comparison suite). */
#include <stdio.h>
#include <string.h>

#include "engine/prompt/prompt.h"

int main(void)
{
    fwrite(VP_PRM_SYSTEM_PROMPT, 1, strlen(VP_PRM_SYSTEM_PROMPT), stdout);
    return 0;
}
