/* Placeholder: the breaker module is being written. */
#include <troupe/troupe.h>
