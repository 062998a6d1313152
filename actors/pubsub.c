/* Placeholder: the pubsub module is being written. */
#include <troupe/troupe.h>
