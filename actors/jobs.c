/* Placeholder: the jobs module is being written. */
#include <troupe/troupe.h>
