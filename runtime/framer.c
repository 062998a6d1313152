/* Placeholder: the framer is being written. */
#include <troupe/framer.h>
