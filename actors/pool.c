/* Placeholder: the pool module is being written. */
#include <troupe/troupe.h>
