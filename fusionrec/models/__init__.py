"""Models by role: the registry (name or local path per role, the LLM and Whisper loaders), offline preparation, converters, tiny test models and `fusionrec models`."""
