package store

import (
	"reflect"
	"testing"
)

// TestCloneSharesNothing fills every slice and map field of the records a
// backend caches, clones them, changes the clone's contents, and requires
// the original to be untouched. A reference field added later and not
// cloned fails here, as does a pointer or interface field, which Clone
// would not know how to copy.
func TestCloneSharesNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		orig  any
		clone func(any) any
	}{
		{"Client", &Client{}, func(v any) any { return v.(*Client).Clone() }},
		{"API", &API{}, func(v any) any { return v.(*API).Clone() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := reflect.ValueOf(tc.orig).Elem()
			fill(t, orig)
			want := reflect.New(orig.Type()).Elem() // the same values, built apart
			fill(t, want)
			c := reflect.ValueOf(tc.clone(tc.orig)).Elem()
			if !reflect.DeepEqual(c.Interface(), orig.Interface()) {
				t.Fatalf("the clone differs from the original")
			}
			for i := range c.NumField() {
				f := c.Field(i)
				switch f.Kind() {
				case reflect.Slice:
					f.Index(0).Set(sample(f.Type().Elem(), "changed"))
				case reflect.Map:
					inner := f.MapIndex(reflect.ValueOf("k"))
					if inner.Kind() == reflect.Slice {
						inner.Index(0).Set(sample(inner.Type().Elem(), "changed"))
					}
					f.SetMapIndex(reflect.ValueOf("new"), sample(f.Type().Elem(), "changed"))
				}
			}
			if !reflect.DeepEqual(orig.Interface(), want.Interface()) {
				t.Errorf("changing the clone changed the original:\n%+v", orig.Interface())
			}
		})
	}
}

// fill sets every slice and map field of v to one element carrying "orig".
func fill(t *testing.T, v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
			f.Index(0).Set(sample(f.Type().Elem(), "orig"))
		case reflect.Map:
			f.Set(reflect.MakeMap(f.Type()))
			f.SetMapIndex(reflect.ValueOf("k"), sample(f.Type().Elem(), "orig"))
		case reflect.Pointer, reflect.Interface, reflect.Chan, reflect.Func:
			t.Fatalf("field %s is a %s: teach Clone to copy it, then this test", v.Type().Field(i).Name, f.Kind())
		}
	}
}

// sample is a value of type t that carries s.
func sample(t reflect.Type, s string) reflect.Value {
	switch t.Kind() {
	case reflect.String:
		return reflect.ValueOf(s).Convert(t)
	case reflect.Uint8:
		return reflect.ValueOf(s[0]).Convert(t)
	case reflect.Slice:
		v := reflect.MakeSlice(t, 1, 1)
		v.Index(0).Set(sample(t.Elem(), s))
		return v
	}
	panic("sample: unsupported type " + t.String())
}
