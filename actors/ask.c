/* Placeholder: the ask module is being written. */
#include <troupe/troupe.h>
