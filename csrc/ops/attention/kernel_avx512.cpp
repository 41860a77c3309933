#include "ops/attention/kernel.h"
