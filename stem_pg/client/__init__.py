"""What an application process uses: the Stem facade, its Backend, and the features it composes."""
