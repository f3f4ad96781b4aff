/* The header must compile cleanly as C11 and C++17 with strict warnings, included twice. */
#include "impp.h"
#include "impp.h"

int header_twice_abi(void);
int header_twice_abi(void) { return IMPP_ABI_VERSION + (int)IMPP_OK + (int)IMPP_BASIC_OPEN; }
