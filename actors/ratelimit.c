/* Placeholder: the ratelimit module is being written. */
#include <troupe/troupe.h>
