#include "ops/cross_entropy/kernel.h"
