# The project's root conftest: nothing here on purpose. The plugin is loaded through
# its pytest11 entry point, exactly as users get it.
