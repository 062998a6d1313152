/* Placeholder: the registry module is being written. */
#include <troupe/troupe.h>
