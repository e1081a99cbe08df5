// DOM building shared by the page's modules. Text always goes in as textContent: content is data, never markup.

/** A `tag` element with an optional class, holding `value` as text. */
export function text(tag, className, value) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  element.textContent = value;
  return element;
}
