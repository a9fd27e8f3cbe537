def computeOrbitalPeriod(semi_major_axis, gravitational_parameter):
    """Kepler's third law."""
    import math
    return 2 * math.pi * math.sqrt(semi_major_axis ** 3 / gravitational_parameter)
