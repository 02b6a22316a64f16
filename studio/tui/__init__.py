"""The Textual studio: the app, its stylesheet and its widgets."""
