"""Symptoms: the HPO vocabulary, my symptoms, soulmate matching, the symptom picture."""
