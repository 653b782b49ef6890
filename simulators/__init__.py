"""Simulated bright-field microscope as pymmcore-plus UniMMCore devices."""
