/* Placeholder: the supervisor module is being written. */
#include <troupe/troupe.h>
