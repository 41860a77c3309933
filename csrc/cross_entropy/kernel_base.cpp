#include "cross_entropy/kernel.h"
